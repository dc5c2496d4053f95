//! Alerts raised by rules, their lifecycle and its full history.

use serde::Serialize;
use sqlx::FromRow;
use vigia_domain::Timestamp;
use vigia_domain::detections::{AlertEventKind, AlertStatus, Candidate, Severity};
use vigia_domain::ids::{AlertId, AlertRuleId, DepartmentId, DeviceId, IncidentId, SubjectId};

use super::DepartmentScope;
use crate::page::{Cursor, Page};
use crate::{Db, StoreError, StoreResult, composed, on_reader, on_writer};

#[derive(Debug, Clone, Serialize)]
pub struct Alert {
    pub id: AlertId,
    pub rule_id: AlertRuleId,
    pub subject_id: SubjectId,
    pub department_id: DepartmentId,
    pub device_id: DeviceId,
    pub severity: Severity,
    pub status: AlertStatus,
    pub detection_count: i64,
    /// Millionths.
    pub confidence_avg: i64,
    pub window_start: Timestamp,
    pub window_end: Timestamp,
    pub raised_at: Timestamp,
    pub acknowledged_at: Option<Timestamp>,
    pub acknowledged_by: Option<String>,
    pub resolved_at: Option<Timestamp>,
    pub resolved_by: Option<String>,
    pub incident_id: Option<IncidentId>,
}

#[derive(FromRow)]
struct Row {
    id: i64,
    rule_id: i64,
    subject_id: i64,
    department_id: i64,
    device_id: i64,
    severity: String,
    status: String,
    detection_count: i64,
    confidence_avg: i64,
    window_start: i64,
    window_end: i64,
    raised_at: i64,
    acknowledged_at: Option<i64>,
    acknowledged_by: Option<String>,
    resolved_at: Option<i64>,
    resolved_by: Option<String>,
    incident_id: Option<i64>,
}

impl TryFrom<Row> for Alert {
    type Error = StoreError;
    fn try_from(r: Row) -> StoreResult<Self> {
        let bad = |e: vigia_domain::FieldError| {
            StoreError::Other(anyhow::anyhow!("stored alert {}: {e}", r.id))
        };
        Ok(Self {
            id: AlertId(r.id),
            rule_id: AlertRuleId(r.rule_id),
            subject_id: SubjectId(r.subject_id),
            department_id: DepartmentId(r.department_id),
            device_id: DeviceId(r.device_id),
            severity: Severity::parse("severity", &r.severity).map_err(bad)?,
            status: AlertStatus::parse("status", &r.status).map_err(bad)?,
            detection_count: r.detection_count,
            confidence_avg: r.confidence_avg,
            window_start: Timestamp::from_millis(r.window_start),
            window_end: Timestamp::from_millis(r.window_end),
            raised_at: Timestamp::from_millis(r.raised_at),
            acknowledged_at: r.acknowledged_at.map(Timestamp::from_millis),
            acknowledged_by: r.acknowledged_by,
            resolved_at: r.resolved_at.map(Timestamp::from_millis),
            resolved_by: r.resolved_by,
            incident_id: r.incident_id.map(IncidentId),
        })
    }
}

const COLUMNS: &str = "id, rule_id, subject_id, department_id, device_id, severity, status, \
     detection_count, confidence_avg, window_start, window_end, raised_at, acknowledged_at, \
     acknowledged_by, resolved_at, resolved_by, incident_id";

/// One entry of an alert's history.
#[derive(Debug, Clone, Serialize, FromRow)]
pub struct HistoryEntry {
    pub id: i64,
    pub action: String,
    pub actor: String,
    #[sqlx(try_from = "i64")]
    pub at: Timestamp,
    pub notes: Option<String>,
}

/// Appends an alert's event to the event log: `$1` alert, `$2` kind, `$3` actor, `$4` at,
/// `$5` data. Written after the transaction's other changes (see migration 0004).
const INSERT_EVENT: &str = "INSERT INTO incident_events (alert_id, kind, actor, at, internal, data) \
     VALUES ($1, $2, $3, $4, FALSE, $5)";

/// The subject's code and name and the rule's name, as alert events carry them.
const NAMES: &str =
    "SELECT s.code, s.name, r.name FROM subjects s, alert_rules r WHERE s.id = $1 AND r.id = $2";

/// The payload of an alert event: the alert as it is after the change, who and what it is
/// about, and the notes of the change. A consumer (real-time, e-mail, webhooks) reads nothing
/// more.
fn event_data(
    alert: &Alert,
    (subject_code, subject_name, rule_name): &(String, String, String),
    notes: Option<&str>,
) -> StoreResult<String> {
    let data = serde_json::json!({
        "alert_id": alert.id,
        "rule_id": alert.rule_id,
        "rule_name": rule_name,
        "subject_id": alert.subject_id,
        "subject_code": subject_code,
        "subject_name": subject_name,
        "department_id": alert.department_id,
        "device_id": alert.device_id,
        "severity": alert.severity.as_str(),
        "status": alert.status.as_str(),
        "detection_count": alert.detection_count,
        "confidence_avg": alert.confidence_avg as f64 / 1e6,
        "window_start": alert.window_start,
        "window_end": alert.window_end,
        "raised_at": alert.raised_at,
        "incident_id": alert.incident_id,
        "notes": notes,
    });
    serde_json::to_string(&data).map_err(|e| StoreError::Other(e.into()))
}

/// Stores a raised alert, its first history entry and its `raised` event.
pub async fn raise(
    db: &Db,
    rule: AlertRuleId,
    subject: SubjectId,
    department: DepartmentId,
    device: DeviceId,
    candidate: &Candidate,
) -> StoreResult<Alert> {
    let now = Timestamp::now().millis();
    let sql = format!(
        "INSERT INTO alerts (rule_id, subject_id, department_id, device_id, severity, status, detection_count, \
         confidence_avg, window_start, window_end, raised_at) \
         VALUES ($1, $2, $3, $4, $5, 'pending', $6, $7, $8, $9, $10) RETURNING {COLUMNS}"
    );
    on_writer!(db, |pool| {
        let mut tx = pool.begin().await?;
        let row: Row = sqlx::query_as(composed(&sql))
            .bind(rule.0)
            .bind(subject.0)
            .bind(department.0)
            .bind(device.0)
            .bind(candidate.severity.as_str())
            .bind(i64::from(candidate.count))
            .bind(i64::from(candidate.average().micros()))
            .bind(candidate.window_start)
            .bind(candidate.window_end)
            .bind(now)
            .fetch_one(&mut *tx)
            .await?;
        sqlx::query("INSERT INTO alert_history (alert_id, action, actor, at) VALUES ($1, 'raised', 'system', $2)")
            .bind(row.id)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        let names: (String, String, String) = sqlx::query_as(NAMES)
            .bind(subject.0)
            .bind(rule.0)
            .fetch_one(&mut *tx)
            .await?;
        let alert = Alert::try_from(row)?;
        sqlx::query(INSERT_EVENT)
            .bind(alert.id.0)
            .bind(AlertEventKind::Raised.as_str())
            .bind("system")
            .bind(now)
            .bind(event_data(&alert, &names, None)?)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(alert)
    })
}

/// Links an alert and the incident it opened (both ways).
pub async fn link_incident(db: &Db, alert: AlertId, incident: IncidentId) -> StoreResult<()> {
    on_writer!(db, |pool| {
        let mut tx = pool.begin().await?;
        sqlx::query("UPDATE alerts SET incident_id = $2 WHERE id = $1")
            .bind(alert.0)
            .bind(incident.0)
            .execute(&mut *tx)
            .await?;
        sqlx::query("UPDATE incidents SET alert_id = $2 WHERE id = $1")
            .bind(incident.0)
            .bind(alert.0)
            .execute(&mut *tx)
            .await?;
        sqlx::query("INSERT INTO alert_history (alert_id, action, actor, at, notes) VALUES ($1, 'incident_opened', 'system', $2, $3)")
            .bind(alert.0)
            .bind(Timestamp::now().millis())
            .bind(format!("incident {}", incident.0))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    })
}

/// The time (window end, ms) of the last alert of `rule` for `subject`.
pub async fn last_raised(
    db: &Db,
    subject: SubjectId,
    rule: AlertRuleId,
) -> StoreResult<Option<i64>> {
    let at: Option<i64> = on_reader!(db, |pool| sqlx::query_scalar(
        "SELECT MAX(window_end) FROM alerts WHERE subject_id = $1 AND rule_id = $2"
    )
    .bind(subject.0)
    .bind(rule.0)
    .fetch_one(pool)
    .await?);
    Ok(at)
}

/// Filters of the alert list (all optional).
#[derive(Debug, Clone, Default)]
pub struct AlertFilter {
    pub status: Option<AlertStatus>,
    pub severity: Option<Severity>,
    pub subject: Option<SubjectId>,
    pub device: Option<DeviceId>,
    pub department: Option<DepartmentId>,
    pub rule: Option<AlertRuleId>,
    pub from: Option<Timestamp>,
    pub to: Option<Timestamp>,
}

/// Alerts in `scope` matching `filter`, newest first.
pub async fn list(
    db: &Db,
    scope: &DepartmentScope,
    filter: &AlertFilter,
    after: Option<Cursor>,
    limit: usize,
) -> StoreResult<Page<Alert>> {
    let (scoped, ids) = scope.condition("department_id", 11);
    let sql = format!(
        "SELECT {COLUMNS} FROM alerts WHERE id < $1 AND ($2 = '' OR status = $2) AND ($3 = '' OR severity = $3) \
         AND ($4 = 0 OR subject_id = $4) AND ($5 = 0 OR device_id = $5) AND ($6 = 0 OR department_id = $6) \
         AND ($7 = 0 OR rule_id = $7) AND raised_at >= $8 AND raised_at < $9 AND $10 = $10{scoped} \
         ORDER BY id DESC LIMIT {}",
        limit + 1
    );
    let rows: Vec<Row> = on_reader!(db, |pool| {
        let mut q = sqlx::query_as(composed(&sql))
            .bind(after.map_or(i64::MAX, |c| c.0))
            .bind(filter.status.map_or("", |s| s.as_str()))
            .bind(filter.severity.map_or("", |s| s.as_str()))
            .bind(filter.subject.map_or(0, |s| s.0))
            .bind(filter.device.map_or(0, |s| s.0))
            .bind(filter.department.map_or(0, |s| s.0))
            .bind(filter.rule.map_or(0, |s| s.0))
            .bind(filter.from.map_or(i64::MIN, Timestamp::millis))
            .bind(filter.to.map_or(i64::MAX, Timestamp::millis))
            .bind(0_i64);
        for id in &ids {
            q = q.bind(*id);
        }
        q.fetch_all(pool).await?
    });
    let page = Page::from_rows(rows, limit, |r| r.id);
    Ok(Page {
        items: page
            .items
            .into_iter()
            .map(Alert::try_from)
            .collect::<StoreResult<_>>()?,
        next_cursor: page.next_cursor,
    })
}

pub async fn find(db: &Db, id: AlertId) -> StoreResult<Alert> {
    let sql = format!("SELECT {COLUMNS} FROM alerts WHERE id = $1");
    let row: Option<Row> = on_reader!(db, |pool| sqlx::query_as(composed(&sql))
        .bind(id.0)
        .fetch_optional(pool)
        .await?);
    Alert::try_from(row.ok_or(StoreError::NotFound)?)
}

pub async fn history(db: &Db, id: AlertId) -> StoreResult<Vec<HistoryEntry>> {
    Ok(on_reader!(db, |pool| sqlx::query_as(
        "SELECT id, action, actor, at, notes FROM alert_history WHERE alert_id = $1 ORDER BY id"
    )
    .bind(id.0)
    .fetch_all(pool)
    .await?))
}

/// Moves an alert from `from` to `to` (`Stale` if someone moved it first), recording who,
/// when and the notes in its history, and its event on the log.
pub async fn transition(
    db: &Db,
    id: AlertId,
    from: AlertStatus,
    to: AlertStatus,
    actor: &str,
    notes: Option<&str>,
) -> StoreResult<Alert> {
    let now = Timestamp::now().millis();
    let (set, kind) = match to {
        AlertStatus::Acknowledged => (
            "acknowledged_at = $3, acknowledged_by = $4",
            AlertEventKind::Acknowledged,
        ),
        _ => (
            "resolved_at = $3, resolved_by = $4",
            AlertEventKind::Resolved,
        ),
    };
    let action = kind.as_str();
    let sql = format!(
        "UPDATE alerts SET status = $5, {set} WHERE id = $1 AND status = $2 RETURNING {COLUMNS}"
    );
    on_writer!(db, |pool| {
        let mut tx = pool.begin().await?;
        let row: Option<Row> = sqlx::query_as(composed(&sql))
            .bind(id.0)
            .bind(from.as_str())
            .bind(now)
            .bind(actor)
            .bind(to.as_str())
            .fetch_optional(&mut *tx)
            .await?;
        let Some(row) = row else {
            return Err(StoreError::Stale);
        };
        sqlx::query("INSERT INTO alert_history (alert_id, action, actor, at, notes) VALUES ($1, $2, $3, $4, $5)")
            .bind(id.0)
            .bind(action)
            .bind(actor)
            .bind(now)
            .bind(notes)
            .execute(&mut *tx)
            .await?;
        let names: (String, String, String) = sqlx::query_as(NAMES)
            .bind(row.subject_id)
            .bind(row.rule_id)
            .fetch_one(&mut *tx)
            .await?;
        let alert = Alert::try_from(row)?;
        sqlx::query(INSERT_EVENT)
            .bind(alert.id.0)
            .bind(action)
            .bind(actor)
            .bind(now)
            .bind(event_data(&alert, &names, notes)?)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(alert)
    })
}
