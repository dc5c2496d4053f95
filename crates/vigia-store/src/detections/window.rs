//! What the detection window reports and the detection export read: a period's per-minute
//! rollups grouped by subject and label, the alerts raised in it, and pages of stored
//! detections in `(at, id)` order for a streamed export.

use serde::Serialize;
use vigia_domain::Timestamp;
use vigia_domain::ids::{DeviceId, SubjectId};

use super::DepartmentScope;
use crate::sql::{Arg, Sql, bind_args};
use crate::{Db, StoreResult, composed, direct, direct_read};

/// One subject's detections of one label in a period (from the rollups). `subject_id` 0 is the
/// anonymous aggregate of erased subjects (no code, name or department).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct SubjectLabelCount {
    pub subject_id: i64,
    pub code: Option<String>,
    pub name: Option<String>,
    pub department_id: Option<i64>,
    pub label: String,
    pub count: i64,
    /// Sum of the confidences, in millionths.
    pub confidence_sum: i64,
}

impl SubjectLabelCount {
    fn from_direct(r: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            subject_id: r.get("subject_id")?,
            code: r.get("code")?,
            name: r.get("name")?,
            department_id: r.get("department_id")?,
            label: r.get("label")?,
            count: r.get("count")?,
            confidence_sum: r.get("confidence_sum")?,
        })
    }
}

/// Alerts raised by the detections of a period (their window ends in it), per subject.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct SubjectAlerts {
    pub subject_id: i64,
    pub code: Option<String>,
    pub name: Option<String>,
    pub department_id: Option<i64>,
    pub alerts: i64,
}

impl SubjectAlerts {
    fn from_direct(r: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            subject_id: r.get("subject_id")?,
            code: r.get("code")?,
            name: r.get("name")?,
            department_id: r.get("department_id")?,
            alerts: r.get("alerts")?,
        })
    }
}

/// The rollups of `[from, to)` (by detection time) grouped by subject and label, ordered by
/// subject and label; and the alerts whose window ends in `[from, to)` (raised by a detection
/// of the period, whenever it arrived), per subject.
#[tracing::instrument(skip(db))]
pub async fn period_counts(
    db: &Db,
    from: Timestamp,
    to: Timestamp,
) -> StoreResult<(Vec<SubjectLabelCount>, Vec<SubjectAlerts>)> {
    let counts_sql = "SELECT r.subject_id, s.code, s.name, s.department_id, r.label, \
        CAST(SUM(r.count) AS BIGINT) AS count, CAST(SUM(r.confidence_sum) AS BIGINT) AS confidence_sum \
        FROM detection_rollups r LEFT JOIN subjects s ON s.id = r.subject_id \
        WHERE r.minute >= $1 AND r.minute < $2 \
        GROUP BY r.subject_id, s.code, s.name, s.department_id, r.label \
        ORDER BY r.subject_id, r.label";
    let alerts_sql = "SELECT a.subject_id, s.code, s.name, s.department_id, COUNT(*) AS alerts \
        FROM alerts a LEFT JOIN subjects s ON s.id = a.subject_id \
        WHERE a.window_end >= $1 AND a.window_end < $2 \
        GROUP BY a.subject_id, s.code, s.name, s.department_id ORDER BY a.subject_id";
    let (f, t) = (from.millis(), to.millis());
    let rows = direct_read!(db,
        sqlite: |conn| {
            let counts = direct::query(conn, counts_sql, &[&f, &t], SubjectLabelCount::from_direct)?;
            let alerts = direct::query(conn, alerts_sql, &[&f, &t], SubjectAlerts::from_direct)?;
            Ok((counts, alerts))
        },
        postgres: |pool| {
            let counts: Vec<SubjectLabelCount> = sqlx::query_as(counts_sql)
                .bind(f)
                .bind(t)
                .fetch_all(pool)
                .await?;
            let alerts: Vec<SubjectAlerts> = sqlx::query_as(alerts_sql)
                .bind(f)
                .bind(t)
                .fetch_all(pool)
                .await?;
            Ok((counts, alerts))
        },
    )?;
    Ok(rows)
}

/// Which detections an export holds.
#[derive(Debug, Clone, Default)]
pub struct DetectionFilter {
    pub subject: Option<SubjectId>,
    pub device: Option<DeviceId>,
    pub label: Option<String>,
    /// Detected at or after.
    pub from: Option<Timestamp>,
    /// Detected before.
    pub to: Option<Timestamp>,
}

/// One stored detection as exported.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct DetectionRow {
    pub id: i64,
    pub at: i64,
    pub received_at: i64,
    pub subject_id: i64,
    pub subject_code: String,
    pub department_id: i64,
    pub device_id: i64,
    pub device_code: Option<String>,
    pub client_id: String,
    pub label: String,
    /// Millionths.
    pub confidence: i64,
    pub in_session: bool,
    pub extra: Option<String>,
}

impl DetectionRow {
    fn from_direct(r: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            id: r.get("id")?,
            at: r.get("at")?,
            received_at: r.get("received_at")?,
            subject_id: r.get("subject_id")?,
            subject_code: r.get("subject_code")?,
            department_id: r.get("department_id")?,
            device_id: r.get("device_id")?,
            device_code: r.get("device_code")?,
            client_id: r.get("client_id")?,
            label: r.get("label")?,
            confidence: r.get("confidence")?,
            in_session: r.get("in_session")?,
            extra: r.get("extra")?,
        })
    }
}

/// The next `limit` detections of `scope` matching `filter` after `after` (`(at, id)` of the
/// last row read), oldest first. Keyset pagination: each page is one index range.
#[tracing::instrument(skip(db, filter))]
pub async fn detections_page(
    db: &Db,
    scope: &DepartmentScope,
    filter: &DetectionFilter,
    after: Option<(i64, i64)>,
    limit: usize,
) -> StoreResult<Vec<DetectionRow>> {
    let mut sql = Sql::new(
        "SELECT d.id, d.at, d.received_at, d.subject_id, s.code AS subject_code, s.department_id, \
         d.device_id, dv.code AS device_code, d.client_id, d.label, d.confidence, d.in_session, d.extra \
         FROM detections d JOIN subjects s ON s.id = d.subject_id \
         LEFT JOIN devices dv ON dv.id = d.device_id WHERE 1 = 1",
    );
    match scope {
        DepartmentScope::All => {}
        DepartmentScope::Only(ids) if ids.is_empty() => sql.push(" AND 1 = 0"),
        DepartmentScope::Only(ids) => {
            let marks: Vec<String> = ids.iter().map(|d| sql.arg(Arg::I64(d.0))).collect();
            sql.push(&format!(" AND s.department_id IN ({})", marks.join(", ")));
        }
    }
    let mut equals = |column: &str, arg: Option<Arg>| {
        if let Some(arg) = arg {
            let p = sql.arg(arg);
            sql.push(&format!(" AND {column} = {p}"));
        }
    };
    equals("d.subject_id", filter.subject.map(|s| Arg::I64(s.0)));
    equals("d.device_id", filter.device.map(|d| Arg::I64(d.0)));
    equals("d.label", filter.label.clone().map(Arg::Text));
    if let Some(from) = filter.from {
        let p = sql.arg(Arg::I64(from.millis()));
        sql.push(&format!(" AND d.at >= {p}"));
    }
    if let Some(to) = filter.to {
        let p = sql.arg(Arg::I64(to.millis()));
        sql.push(&format!(" AND d.at < {p}"));
    }
    if let Some((at, id)) = after {
        let a = sql.arg(Arg::I64(at));
        let i = sql.arg(Arg::I64(id));
        sql.push(&format!(" AND (d.at > {a} OR (d.at = {a} AND d.id > {i}))"));
    }
    sql.push(" ORDER BY d.at, d.id");
    sql.limit(limit);
    let rows: Vec<DetectionRow> = direct_read!(db,
        sqlite: |conn| direct::query_sized(
            conn,
            &sql.text,
            &direct::args(&sql.args),
            limit.min(4096),
            DetectionRow::from_direct,
        ),
        postgres: |pool| Ok(bind_args!(sqlx::query_as(composed(&sql.text)), &sql.args)
            .fetch_all(pool)
            .await?),
    )?;
    Ok(rows)
}
