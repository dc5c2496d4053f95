//! The `reports` table: one row per generated report, its files' object keys and a JSON
//! summary; the reports a caller may see ([`ReportScope`]) and their list.
//!
//! A global report is identified by the minute its period ends and an incident report by its
//! incident and department: [`save`] replaces the existing row of the same identity, so reruns
//! are idempotent.

use vigia_domain::Timestamp;
use vigia_domain::ids::{DepartmentId, IncidentId};

use crate::page::{Cursor, Page};
use crate::sql::{Arg, Sql, bind_args};
use crate::{Db, StoreError, StoreResult, composed, direct, direct_read};

/// What a report covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReportKind {
    /// Every incident of a period.
    Global,
    /// One incident and its history.
    Incident,
    /// Filtered and grouped counts, on demand.
    Custom,
    /// The detection window report of a period (per subject, every 15 minutes).
    Detections,
    /// A competition's frozen ranking, when its voting closed.
    Competition,
}

impl ReportKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ReportKind::Global => "global",
            ReportKind::Incident => "incident",
            ReportKind::Custom => "custom",
            ReportKind::Detections => "detections",
            ReportKind::Competition => "competition",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "global" => Some(ReportKind::Global),
            "incident" => Some(ReportKind::Incident),
            "custom" => Some(ReportKind::Custom),
            "detections" => Some(ReportKind::Detections),
            "competition" => Some(ReportKind::Competition),
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
    /// The competition of a competition report.
    pub competition_id: Option<i64>,
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
    pub competition_id: Option<i64>,
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
    created_by, created_at, updated_at, competition_id";

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
    Option<i64>,
);

/// A row of [`REPORT_COLUMNS`] read on a direct SQLite connection, each column by its name.
fn report_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ReportRow> {
    Ok((
        r.get("id")?,
        r.get("kind")?,
        r.get("period_start")?,
        r.get("period_end")?,
        r.get("incident_id")?,
        r.get("department_id")?,
        r.get("objects")?,
        r.get("summary")?,
        r.get("created_by")?,
        r.get("created_at")?,
        r.get("updated_at")?,
        r.get("competition_id")?,
    ))
}

fn record(row: ReportRow) -> ReportRecord {
    let (
        id,
        kind,
        start,
        end,
        incident,
        department,
        objects,
        summary,
        by,
        created,
        updated,
        competition,
    ) = row;
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
        competition_id: competition,
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
        ReportKind::Detections => {
            "ON CONFLICT (period_end) WHERE kind = 'detections' DO UPDATE SET "
        }
        ReportKind::Competition => {
            "ON CONFLICT (competition_id) WHERE kind = 'competition' DO UPDATE SET period_end = excluded.period_end, "
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
         created_by, created_at, updated_at, competition_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9, $10) \
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
    let competition_id = report.competition_id;
    // Incident reports are saved one per routed incident: in the group commit on SQLite.
    let row: ReportRow = crate::grouped_write!(db,
        sqlite: |conn| {
            let row = direct::query_optional(
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
                    &competition_id,
                ],
                report_row,
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
                .bind(competition_id)
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
    let row: Option<ReportRow> = direct_read!(db,
        sqlite: |conn| direct::query_optional(conn, &sql.text, &direct::args(&sql.args), report_row),
        postgres: |pool| Ok(bind_args!(sqlx::query_as(composed(&sql.text)), &sql.args)
            .fetch_optional(pool)
            .await?),
    )?;
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
    let rows: Vec<ReportRow> = direct_read!(db,
        sqlite: |conn| direct::query(conn, &sql.text, &direct::args(&sql.args), report_row),
        postgres: |pool| Ok(bind_args!(sqlx::query_as(composed(&sql.text)), &sql.args)
            .fetch_all(pool)
            .await?),
    )?;
    Ok(Page::from_rows(
        rows.into_iter().map(record).collect(),
        limit,
        |r| r.id,
    ))
}
