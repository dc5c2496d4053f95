//! Reports and exports: the `reports` table (one row per generated report, its files' object
//! keys and a JSON summary), the aggregates a global report adds to [`incident_stats`]
//! (mean times, SLA breaches), custom grouped counts, and the pages exports are streamed from.
//!
//! A global report is identified by the minute its period ends and an incident report by its
//! incident and department: [`save`] replaces the existing row of the same identity, so reruns are idempotent.
//!
//! [`incident_stats`]: crate::incidents::stats::incident_stats

use vigia_domain::Timestamp;
use vigia_domain::ids::{DepartmentId, IncidentId};
use vigia_domain::incidents::{IncidentCode, ReadScope};

use crate::incidents::{IncidentFilter, filter_conditions, restrict};
use crate::page::{Cursor, Page};
use crate::sql::{Arg, Sql, bind_args};
use crate::{Db, StoreError, StoreResult, composed, on_reader};

// --- the reports table -------------------------------------------------------------------------

/// What a report covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReportKind {
    /// Every incident of a period.
    Global,
    /// One incident and its history.
    Incident,
    /// Filtered and grouped counts, on demand.
    Custom,
}

impl ReportKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ReportKind::Global => "global",
            ReportKind::Incident => "incident",
            ReportKind::Custom => "custom",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "global" => Some(ReportKind::Global),
            "incident" => Some(ReportKind::Incident),
            "custom" => Some(ReportKind::Custom),
            _ => None,
        }
    }
}

/// A report to record.
#[derive(Debug, Clone)]
pub struct NewReport {
    pub kind: ReportKind,
    pub period_start: Option<Timestamp>,
    pub period_end: Option<Timestamp>,
    pub incident_id: Option<IncidentId>,
    pub department_id: Option<DepartmentId>,
    /// Format (`json`, `csv`, `xlsx`) → object key, in the order written.
    pub objects: Vec<(String, String)>,
    pub summary: serde_json::Value,
    /// `user:12`, `system`, ...
    pub created_by: String,
}

/// A recorded report.
#[derive(Debug, Clone)]
pub struct ReportRecord {
    pub id: i64,
    pub kind: ReportKind,
    pub period_start: Option<Timestamp>,
    pub period_end: Option<Timestamp>,
    pub incident_id: Option<IncidentId>,
    pub department_id: Option<DepartmentId>,
    pub objects: Vec<(String, String)>,
    pub summary: serde_json::Value,
    pub created_by: String,
    pub created_at: Timestamp,
    /// When it was last (re)generated.
    pub updated_at: Timestamp,
}

impl ReportRecord {
    /// The object key of the file in `format`, if the report has one.
    pub fn object(&self, format: &str) -> Option<&str> {
        self.objects
            .iter()
            .find(|(f, _)| f == format)
            .map(|(_, key)| key.as_str())
    }
}

const REPORT_COLUMNS: &str = "id, kind, period_start, period_end, incident_id, department_id, objects, summary, \
    created_by, created_at, updated_at";

type ReportRow = (
    i64,
    String,
    Option<i64>,
    Option<i64>,
    Option<i64>,
    Option<i64>,
    String,
    String,
    String,
    i64,
    i64,
);

fn record(row: ReportRow) -> ReportRecord {
    let (id, kind, start, end, incident, department, objects, summary, by, created, updated) = row;
    let mut objects: Vec<(String, String)> =
        serde_json::from_str::<serde_json::Map<_, _>>(&objects)
            .map(|map| {
                map.into_iter()
                    .filter_map(|(format, key)| key.as_str().map(|k| (format, k.to_owned())))
                    .collect()
            })
            .unwrap_or_default();
    // JSON first (the report itself), then its variants.
    const ORDER: [&str; 3] = ["json", "csv", "xlsx"];
    objects.sort_by_key(|(format, _)| {
        ORDER
            .iter()
            .position(|f| f == format)
            .unwrap_or(ORDER.len())
    });
    ReportRecord {
        id,
        kind: ReportKind::parse(&kind).unwrap_or(ReportKind::Custom),
        period_start: start.map(Timestamp::from_millis),
        period_end: end.map(Timestamp::from_millis),
        incident_id: incident.map(IncidentId),
        department_id: department.map(DepartmentId),
        objects,
        summary: serde_json::from_str(&summary).unwrap_or(serde_json::Value::Null),
        created_by: by,
        created_at: Timestamp::from_millis(created),
        updated_at: Timestamp::from_millis(updated),
    }
}

/// Records `report`. A global report with the same period end, or an incident report of the
/// same incident and department, is replaced in place (same id, `created_at` kept); custom reports are always
/// added.
#[tracing::instrument(skip_all, fields(kind = report.kind.as_str()))]
pub async fn save(db: &Db, report: &NewReport) -> StoreResult<ReportRecord> {
    let objects: serde_json::Map<String, serde_json::Value> = report
        .objects
        .iter()
        .map(|(f, k)| (f.clone(), serde_json::Value::String(k.clone())))
        .collect();
    let objects = serde_json::Value::Object(objects).to_string();
    let summary = report.summary.to_string();
    let conflict = match report.kind {
        ReportKind::Global => "ON CONFLICT (period_end) WHERE kind = 'global' DO UPDATE SET ",
        ReportKind::Incident => {
            "ON CONFLICT (incident_id, department_id) WHERE kind = 'incident' DO UPDATE SET "
        }
        ReportKind::Custom => "",
    };
    let update = if conflict.is_empty() {
        String::new()
    } else {
        format!(
            "{conflict}period_start = excluded.period_start, department_id = excluded.department_id, \
             objects = excluded.objects, summary = excluded.summary, created_by = excluded.created_by, \
             updated_at = excluded.updated_at "
        )
    };
    let sql = format!(
        "INSERT INTO reports (kind, period_start, period_end, incident_id, department_id, objects, summary, \
         created_by, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9) \
         {update}RETURNING {REPORT_COLUMNS}"
    );
    let now = Timestamp::now().millis();
    let (kind, period_start, period_end) = (
        report.kind.as_str(),
        report.period_start.map(Timestamp::millis),
        report.period_end.map(Timestamp::millis),
    );
    let (incident_id, department_id) = (
        report.incident_id.map(|i| i.0),
        report.department_id.map(|d| d.0),
    );
    let created_by = report.created_by.clone();
    // Incident reports are saved one per routed incident: in the group commit on SQLite.
    let row: ReportRow = crate::grouped_write!(db,
        sqlite: |conn| {
            let row = crate::direct::query_optional(
                conn,
                &sql,
                &[
                    &kind,
                    &period_start,
                    &period_end,
                    &incident_id,
                    &department_id,
                    &objects,
                    &summary,
                    &created_by,
                    &now,
                ],
                |r| {
                    Ok((
                        r.get(0)?,
                        r.get(1)?,
                        r.get(2)?,
                        r.get(3)?,
                        r.get(4)?,
                        r.get(5)?,
                        r.get(6)?,
                        r.get(7)?,
                        r.get(8)?,
                        r.get(9)?,
                        r.get(10)?,
                    ))
                },
            )?;
            row.ok_or_else(|| StoreError::Other(anyhow::anyhow!("saving a report returned no row")))
        },
        postgres: |conn| {
            let row: ReportRow = sqlx::query_as(composed(&sql))
                .bind(kind)
                .bind(period_start)
                .bind(period_end)
                .bind(incident_id)
                .bind(department_id)
                .bind(&objects)
                .bind(&summary)
                .bind(&created_by)
                .bind(now)
                .fetch_one(&mut *conn)
                .await?;
            Ok(row)
        },
    )?;
    Ok(record(row))
}

/// Which reports a caller may see: all of them, or only incident reports of some departments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReportScope {
    All,
    Departments(Vec<DepartmentId>),
}

fn report_scope(sql: &mut Sql, scope: &ReportScope) {
    if let ReportScope::Departments(departments) = scope {
        if departments.is_empty() {
            sql.push(" AND 1 = 0");
        } else {
            let list: Vec<String> = departments.iter().map(|d| sql.arg(Arg::I64(d.0))).collect();
            sql.push(&format!(
                " AND kind = 'incident' AND department_id IN ({})",
                list.join(", ")
            ));
        }
    }
}

/// One report, if `scope` may see it.
pub async fn find(db: &Db, scope: &ReportScope, id: i64) -> StoreResult<ReportRecord> {
    let mut sql = Sql::new(&format!("SELECT {REPORT_COLUMNS} FROM reports WHERE id = "));
    let p = sql.arg(Arg::I64(id));
    sql.push(&p);
    report_scope(&mut sql, scope);
    let row: Option<ReportRow> = on_reader!(db, |pool| bind_args!(
        sqlx::query_as(composed(&sql.text)),
        &sql.args
    )
    .fetch_optional(pool)
    .await?);
    row.map(record).ok_or(StoreError::NotFound)
}

/// Filters of the report list.
#[derive(Debug, Clone, Default)]
pub struct ReportFilter {
    pub kind: Option<ReportKind>,
    pub incident: Option<IncidentId>,
    pub department: Option<DepartmentId>,
    /// Reports whose period ends at or after this.
    pub period_from: Option<Timestamp>,
    /// Reports whose period ends before this.
    pub period_to: Option<Timestamp>,
}

/// Reports in `scope` matching `filter`, newest first.
pub async fn list(
    db: &Db,
    scope: &ReportScope,
    filter: &ReportFilter,
    cursor: Option<Cursor>,
    limit: usize,
) -> StoreResult<Page<ReportRecord>> {
    let mut sql = Sql::new(&format!("SELECT {REPORT_COLUMNS} FROM reports WHERE 1 = 1"));
    report_scope(&mut sql, scope);
    if let Some(kind) = filter.kind {
        let p = sql.arg(Arg::Text(kind.as_str().to_owned()));
        sql.push(&format!(" AND kind = {p}"));
    }
    let mut equals = |column: &str, value: Option<i64>| {
        if let Some(v) = value {
            let p = sql.arg(Arg::I64(v));
            sql.push(&format!(" AND {column} = {p}"));
        }
    };
    equals("incident_id", filter.incident.map(|i| i.0));
    equals("department_id", filter.department.map(|d| d.0));
    if let Some(from) = filter.period_from {
        let p = sql.arg(Arg::I64(from.millis()));
        sql.push(&format!(" AND period_end >= {p}"));
    }
    if let Some(to) = filter.period_to {
        let p = sql.arg(Arg::I64(to.millis()));
        sql.push(&format!(" AND period_end < {p}"));
    }
    if let Some(cursor) = cursor {
        let p = sql.arg(Arg::I64(cursor.0));
        sql.push(&format!(" AND id < {p}"));
    }
    sql.push(" ORDER BY id DESC");
    sql.limit(limit + 1);
    let rows: Vec<ReportRow> = on_reader!(db, |pool| bind_args!(
        sqlx::query_as(composed(&sql.text)),
        &sql.args
    )
    .fetch_all(pool)
    .await?);
    Ok(Page::from_rows(
        rows.into_iter().map(record).collect(),
        limit,
        |r| r.id,
    ))
}

// --- global report aggregates ------------------------------------------------------------------

/// Service figures over the incidents created in a period, as of a point in time.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct ServiceFigures {
    /// Incidents created in the period.
    pub created: i64,
    /// Incidents resolved in the period (whenever created).
    pub resolved: i64,
    /// Of those created, how many were acknowledged, and the mean seconds it took.
    pub acknowledged: i64,
    pub mean_acknowledge_secs: Option<f64>,
    /// Of those created, how many are resolved, and the mean seconds it took.
    pub resolved_of_created: i64,
    pub mean_resolve_secs: Option<f64>,
    /// Of those created, acknowledged late or still unacknowledged past the target at `as_of`.
    pub acknowledge_breaches: i64,
    /// Of those created, resolved late or still unresolved past the target at `as_of`
    /// (time on hold does not count).
    pub resolve_breaches: i64,
    /// Incidents with either breach.
    pub breached_incidents: i64,
}

/// The SLA breach conditions as of `$T` (an acknowledgement or resolution after `$T` counts as
/// not yet done), mirroring `SlaClock::is_acknowledge_breached` / `is_resolve_breached`.
fn breach_conditions(t: &str) -> (String, String) {
    let ack = format!(
        "(CASE WHEN acknowledged_at <= {t} THEN acknowledged_at ELSE {t} END) > acknowledge_due_at"
    );
    let at = format!("(CASE WHEN resolved_at <= {t} THEN resolved_at ELSE {t} END)");
    let resolve = format!(
        "{at} > sla_started_at + sla_resolve_secs * 1000 + sla_paused_total_ms \
         + (CASE WHEN sla_paused_since IS NOT NULL AND resolved_at IS NULL THEN {at} - sla_paused_since ELSE 0 END)"
    );
    (ack, resolve)
}

type FiguresRow = (
    i64,
    i64,
    Option<f64>,
    i64,
    Option<f64>,
    Option<i64>,
    Option<i64>,
    Option<i64>,
);

/// Mean times and SLA breaches of the incidents created in `[from, to)`, and the incidents
/// resolved in it: two statements, one pass over each index range, run at once.
#[tracing::instrument(skip(db))]
pub async fn service_figures(
    db: &Db,
    from: Timestamp,
    to: Timestamp,
    as_of: Timestamp,
) -> StoreResult<ServiceFigures> {
    let (ack, resolve) = breach_conditions("$3");
    let created = format!(
        "SELECT COUNT(*), COUNT(acknowledged_at), \
           CAST(AVG(acknowledged_at - created_at) / 1000.0 AS DOUBLE PRECISION), \
           COUNT(resolved_at), CAST(AVG(resolved_at - created_at) / 1000.0 AS DOUBLE PRECISION), \
           CAST(SUM(CASE WHEN {ack} THEN 1 ELSE 0 END) AS BIGINT), \
           CAST(SUM(CASE WHEN {resolve} THEN 1 ELSE 0 END) AS BIGINT), \
           CAST(SUM(CASE WHEN {ack} OR {resolve} THEN 1 ELSE 0 END) AS BIGINT) \
         FROM incidents WHERE created_at >= $1 AND created_at < $2"
    );
    let resolved = "SELECT COUNT(*) FROM incidents WHERE resolved_at >= $1 AND resolved_at < $2";
    let (row, resolved): (FiguresRow, i64) = on_reader!(db, |pool| tokio::try_join!(
        sqlx::query_as(composed(&created))
            .bind(from.millis())
            .bind(to.millis())
            .bind(as_of.millis())
            .fetch_one(pool),
        sqlx::query_scalar(resolved)
            .bind(from.millis())
            .bind(to.millis())
            .fetch_one(pool),
    )?);
    let (created, acknowledged, mtta, resolved_of_created, mttr, ack_b, res_b, either) = row;
    Ok(ServiceFigures {
        created,
        resolved,
        acknowledged,
        mean_acknowledge_secs: mtta,
        resolved_of_created,
        mean_resolve_secs: mttr,
        acknowledge_breaches: ack_b.unwrap_or(0),
        resolve_breaches: res_b.unwrap_or(0),
        breached_incidents: either.unwrap_or(0),
    })
}

// --- custom reports ----------------------------------------------------------------------------

/// A dimension custom reports group by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dimension {
    Status,
    Urgency,
    Category,
    Department,
    Zone,
    Assignee,
    Source,
    /// The UTC date of creation.
    Day,
}

impl Dimension {
    pub const ALL: [Dimension; 8] = [
        Dimension::Status,
        Dimension::Urgency,
        Dimension::Category,
        Dimension::Department,
        Dimension::Zone,
        Dimension::Assignee,
        Dimension::Source,
        Dimension::Day,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Dimension::Status => "status",
            Dimension::Urgency => "urgency",
            Dimension::Category => "category",
            Dimension::Department => "department",
            Dimension::Zone => "zone",
            Dimension::Assignee => "assignee",
            Dimension::Source => "source",
            Dimension::Day => "day",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|d| d.as_str() == raw)
    }

    fn expression(self) -> &'static str {
        match self {
            Dimension::Status => "status",
            Dimension::Urgency => "urgency",
            Dimension::Category => "CAST(category_id AS TEXT)",
            Dimension::Department => "CAST(department_id AS TEXT)",
            Dimension::Zone => "CAST(zone_id AS TEXT)",
            Dimension::Assignee => "CAST(assignee_id AS TEXT)",
            Dimension::Source => "source",
            Dimension::Day => "CAST(created_at / 86400000 AS TEXT)",
        }
    }
}

/// One group of a custom report: the key per dimension (as text; `None` for no department,
/// zone or assignee; days as days since the epoch), its count and mean times.
#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    pub keys: Vec<Option<String>>,
    pub count: i64,
    pub mean_acknowledge_secs: Option<f64>,
    pub mean_resolve_secs: Option<f64>,
}

/// The most groups a custom report returns.
pub const MAX_GROUPS: usize = 10_000;

/// Incidents matching `filter` counted per combination of `dimensions` (ordered by the keys).
/// `departments` narrows the count as the statistics do: `None` counts everything, otherwise
/// only incidents routed to those departments.
#[tracing::instrument(skip_all)]
pub async fn grouped(
    db: &Db,
    departments: Option<&[DepartmentId]>,
    filter: &IncidentFilter,
    dimensions: &[Dimension],
) -> StoreResult<Vec<Group>> {
    let keys: Vec<String> = dimensions
        .iter()
        .enumerate()
        .map(|(n, d)| format!("{} AS k{n}", d.expression()))
        .collect();
    let mut sql = Sql::new("SELECT ");
    for key in &keys {
        sql.push(key);
        sql.push(", ");
    }
    sql.push(
        "COUNT(*), CAST(AVG(acknowledged_at - created_at) / 1000.0 AS DOUBLE PRECISION), \
         CAST(AVG(resolved_at - created_at) / 1000.0 AS DOUBLE PRECISION) FROM incidents WHERE 1 = 1",
    );
    if let Some(departments) = departments {
        if departments.is_empty() {
            sql.push(" AND 1 = 0");
        } else {
            let list: Vec<String> = departments.iter().map(|d| sql.arg(Arg::I64(d.0))).collect();
            sql.push(&format!(" AND department_id IN ({})", list.join(", ")));
        }
    }
    // Counted as the departments' staff see them: with their people.
    let scope = match departments {
        None => ReadScope::All,
        Some(departments) => ReadScope::Limited {
            departments: departments.to_vec(),
            reporter: None,
            staff: true,
        },
    };
    filter_conditions(&mut sql, &scope, filter);
    if !dimensions.is_empty() {
        let positions: Vec<String> = (1..=dimensions.len()).map(|n| n.to_string()).collect();
        sql.push(&format!(
            " GROUP BY {list} ORDER BY {list}",
            list = positions.join(", ")
        ));
    }
    sql.limit(MAX_GROUPS);
    let text = composed(&sql.text);
    let groups = on_reader!(db, |pool| {
        use sqlx::Row;
        let rows = bind_args!(sqlx::query(text), &sql.args)
            .fetch_all(pool)
            .await?;
        let n = dimensions.len();
        let mut groups = Vec::with_capacity(rows.len());
        for row in rows {
            let mut keys = Vec::with_capacity(n);
            for i in 0..n {
                keys.push(row.try_get::<Option<String>, _>(i)?);
            }
            groups.push(Group {
                keys,
                count: row.try_get(n)?,
                mean_acknowledge_secs: row.try_get(n + 1)?,
                mean_resolve_secs: row.try_get(n + 2)?,
            });
        }
        groups
    });
    // An empty selection still has one group (of zero incidents) when nothing is grouped.
    Ok(groups)
}

// --- exports -----------------------------------------------------------------------------------

/// How many incidents `scope` sees that match `filter` (for progress bars).
pub async fn count_incidents(
    db: &Db,
    scope: &ReadScope,
    filter: &IncidentFilter,
) -> StoreResult<i64> {
    let mut sql = Sql::new("SELECT COUNT(*) FROM incidents WHERE 1 = 1");
    restrict(&mut sql, scope);
    filter_conditions(&mut sql, scope, filter);
    let n: i64 = on_reader!(db, |pool| bind_args!(
        sqlx::query_scalar(composed(&sql.text)),
        &sql.args
    )
    .fetch_one(pool)
    .await?);
    Ok(n)
}

/// An event with what deciding its visibility needs: its incident's department and reporter.
#[derive(Debug, Clone)]
pub struct ExportEvent {
    pub id: i64,
    pub incident_id: IncidentId,
    pub code: IncidentCode,
    pub kind: String,
    pub actor: String,
    pub at: Timestamp,
    pub internal: bool,
    /// The event's payload, as stored (JSON text).
    pub data: String,
    pub department_id: Option<DepartmentId>,
    pub reporter_id: Option<vigia_domain::ids::UserId>,
}

type EventRow = (
    i64,
    i64,
    String,
    String,
    i64,
    bool,
    String,
    Option<i64>,
    Option<i64>,
);

/// The next `limit` events (by id, after `after`) of the incidents `scope` sees that match
/// `filter`. Whether a caller may see an internal event or its actor is decided by the caller
/// per event (its incident's department and reporter come along).
pub async fn events_page(
    db: &Db,
    scope: &ReadScope,
    filter: &IncidentFilter,
    after: i64,
    limit: usize,
) -> StoreResult<Vec<ExportEvent>> {
    let mut sql = Sql::new(
        "SELECT e.id, e.incident_id, e.kind, e.actor, e.at, e.internal, e.data, department_id, reporter_id \
         FROM incident_events e JOIN incidents ON incidents.id = e.incident_id WHERE e.id > ",
    );
    let p = sql.arg(Arg::I64(after));
    sql.push(&p);
    restrict(&mut sql, scope);
    filter_conditions(&mut sql, scope, filter);
    sql.push(" ORDER BY e.id");
    sql.limit(limit);
    let rows: Vec<EventRow> = on_reader!(db, |pool| bind_args!(
        sqlx::query_as(composed(&sql.text)),
        &sql.args
    )
    .fetch_all(pool)
    .await?);
    Ok(rows
        .into_iter()
        .map(
            |(id, incident, kind, actor, at, internal, data, department, reporter)| ExportEvent {
                id,
                incident_id: IncidentId(incident),
                code: IncidentCode::from_sequence(incident.max(0) as u64),
                kind,
                actor,
                at: Timestamp::from_millis(at),
                internal,
                data,
                department_id: department.map(DepartmentId),
                reporter_id: reporter.map(vigia_domain::ids::UserId),
            },
        )
        .collect())
}
