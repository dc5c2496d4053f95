//! Alerts raised by rules, their lifecycle and its full history.

use serde::Serialize;
use sqlx::FromRow;
use vigia_domain::Timestamp;
use vigia_domain::detections::{AlertEventKind, AlertStatus, Candidate, Severity};
use vigia_domain::ids::{AlertId, AlertRuleId, DepartmentId, DeviceId, IncidentId, SubjectId};

use super::DepartmentScope;
use crate::direct::direct_row;
use crate::page::{Cursor, Page};
use crate::{Db, StoreError, StoreResult, composed, direct, direct_read, grouped_write};

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

direct_row! {
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

impl HistoryEntry {
    fn from_direct(r: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            id: r.get("id")?,
            action: r.get("action")?,
            actor: r.get("actor")?,
            at: Timestamp::from_millis(r.get("at")?),
            notes: r.get("notes")?,
        })
    }
}

/// Appends an alert's event to the event log: `$1` alert, `$2` kind, `$3` actor, `$4` at,
/// `$5` data. Written after the transaction's other changes (see migration 0004).
const INSERT_EVENT: &str = "INSERT INTO incident_events (alert_id, kind, actor, at, internal, data) \
     VALUES ($1, $2, $3, $4, FALSE, $5)";

/// The subject's code and name and the rule's name, as alert events carry them.
const NAMES: &str = "SELECT s.code AS subject_code, s.name AS subject_name, r.name AS rule_name \
     FROM subjects s, alert_rules r WHERE s.id = $1 AND r.id = $2";

/// [`NAMES`] on SQLite.
fn names_direct(
    conn: &direct::Conn,
    subject: i64,
    rule: i64,
) -> StoreResult<(String, String, String)> {
    direct::query_optional(conn, NAMES, &[&subject, &rule], |r| {
        Ok((
            r.get("subject_code")?,
            r.get("subject_name")?,
            r.get("rule_name")?,
        ))
    })?
    .ok_or_else(|| StoreError::Other(anyhow::anyhow!("no subject {subject} or rule {rule}")))
}

/// A history entry: `$1` alert, `$2` action, `$3` actor, `$4` at, `$5` notes.
const INSERT_HISTORY: &str =
    "INSERT INTO alert_history (alert_id, action, actor, at, notes) VALUES ($1, $2, $3, $4, $5)";

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
    let severity = candidate.severity.as_str();
    let count = i64::from(candidate.count);
    let average = i64::from(candidate.average().micros());
    let (window_start, window_end) = (candidate.window_start, candidate.window_end);
    let raised = AlertEventKind::Raised.as_str();
    let no_notes: Option<String> = None;
    grouped_write!(db,
        sqlite: |conn| {
            let row = direct::query_optional(
                conn,
                &sql,
                &[
                    &rule.0,
                    &subject.0,
                    &department.0,
                    &device.0,
                    &severity,
                    &count,
                    &average,
                    &window_start,
                    &window_end,
                    &now,
                ],
                Row::from_direct,
            )?
            .ok_or(StoreError::NotFound)?;
            direct::execute(conn, INSERT_HISTORY, &[&row.id, &"raised", &"system", &now, &no_notes])?;
            let names = names_direct(conn, subject.0, rule.0)?;
            let alert = Alert::try_from(row)?;
            let data = event_data(&alert, &names, None)?;
            direct::execute(conn, INSERT_EVENT, &[&alert.id.0, &raised, &"system", &now, &data])?;
            Ok(alert)
        },
        postgres: |tx| {
            let row: Row = sqlx::query_as(composed(&sql))
                .bind(rule.0)
                .bind(subject.0)
                .bind(department.0)
                .bind(device.0)
                .bind(severity)
                .bind(count)
                .bind(average)
                .bind(window_start)
                .bind(window_end)
                .bind(now)
                .fetch_one(&mut *tx)
                .await?;
            sqlx::query(INSERT_HISTORY)
                .bind(row.id)
                .bind("raised")
                .bind("system")
                .bind(now)
                .bind(&no_notes)
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
                .bind(raised)
                .bind("system")
                .bind(now)
                .bind(event_data(&alert, &names, None)?)
                .execute(&mut *tx)
                .await?;
            Ok(alert)
        },
    )
}

/// Links an alert and the incident it opened (both ways).
pub async fn link_incident(db: &Db, alert: AlertId, incident: IncidentId) -> StoreResult<()> {
    const ALERT: &str = "UPDATE alerts SET incident_id = $2 WHERE id = $1";
    const INCIDENT: &str = "UPDATE incidents SET alert_id = $2 WHERE id = $1";
    let now = Timestamp::now().millis();
    let notes = Some(format!("incident {}", incident.0));
    grouped_write!(db,
        sqlite: |conn| {
            direct::execute(conn, ALERT, &[&alert.0, &incident.0])?;
            direct::execute(conn, INCIDENT, &[&incident.0, &alert.0])?;
            direct::execute(
                conn,
                INSERT_HISTORY,
                &[&alert.0, &"incident_opened", &"system", &now, &notes],
            )?;
            Ok(())
        },
        postgres: |tx| {
            sqlx::query(ALERT)
                .bind(alert.0)
                .bind(incident.0)
                .execute(&mut *tx)
                .await?;
            sqlx::query(INCIDENT)
                .bind(incident.0)
                .bind(alert.0)
                .execute(&mut *tx)
                .await?;
            sqlx::query(INSERT_HISTORY)
                .bind(alert.0)
                .bind("incident_opened")
                .bind("system")
                .bind(now)
                .bind(&notes)
                .execute(&mut *tx)
                .await?;
            Ok(())
        },
    )
}

/// The time (window end, ms) of the last alert of `rule` for `subject`.
pub async fn last_raised(
    db: &Db,
    subject: SubjectId,
    rule: AlertRuleId,
) -> StoreResult<Option<i64>> {
    const SQL: &str =
        "SELECT MAX(window_end) AS last FROM alerts WHERE subject_id = $1 AND rule_id = $2";
    direct_read!(db,
        sqlite: |conn| Ok(direct::query_optional(conn, SQL, &[&subject.0, &rule.0], |r| r.get("last"))?.flatten()),
        postgres: |pool| Ok(sqlx::query_scalar(SQL)
            .bind(subject.0)
            .bind(rule.0)
            .fetch_one(pool)
            .await?),
    )
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
    let after = after.map_or(i64::MAX, |c| c.0);
    let status = filter.status.map_or("", |s| s.as_str());
    let severity = filter.severity.map_or("", |s| s.as_str());
    let subject = filter.subject.map_or(0, |s| s.0);
    let device = filter.device.map_or(0, |s| s.0);
    let department = filter.department.map_or(0, |s| s.0);
    let rule = filter.rule.map_or(0, |s| s.0);
    let from = filter.from.map_or(i64::MIN, Timestamp::millis);
    let to = filter.to.map_or(i64::MAX, Timestamp::millis);
    let rows: Vec<Row> = direct_read!(db,
        sqlite: |conn| {
            let args = DepartmentScope::direct_args(
                &[&after, &status, &severity, &subject, &device, &department, &rule, &from, &to, &0_i64],
                &ids,
            );
            direct::query(conn, &sql, &args, Row::from_direct)
        },
        postgres: |pool| {
            let mut q = sqlx::query_as(composed(&sql))
                .bind(after)
                .bind(status)
                .bind(severity)
                .bind(subject)
                .bind(device)
                .bind(department)
                .bind(rule)
                .bind(from)
                .bind(to)
                .bind(0_i64);
            for id in &ids {
                q = q.bind(*id);
            }
            Ok(q.fetch_all(pool).await?)
        },
    )?;
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
    let row: Option<Row> = direct_read!(db,
        sqlite: |conn| direct::query_optional(conn, &sql, &[&id.0], Row::from_direct),
        postgres: |pool| Ok(sqlx::query_as(composed(&sql)).bind(id.0).fetch_optional(pool).await?),
    )?;
    Alert::try_from(row.ok_or(StoreError::NotFound)?)
}

pub async fn history(db: &Db, id: AlertId) -> StoreResult<Vec<HistoryEntry>> {
    const SQL: &str =
        "SELECT id, action, actor, at, notes FROM alert_history WHERE alert_id = $1 ORDER BY id";
    direct_read!(db,
        sqlite: |conn| direct::query(conn, SQL, &[&id.0], HistoryEntry::from_direct),
        postgres: |pool| Ok(sqlx::query_as(SQL).bind(id.0).fetch_all(pool).await?),
    )
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
    let (from, to) = (from.as_str(), to.as_str());
    let actor = actor.to_owned();
    let notes = notes.map(str::to_owned);
    grouped_write!(db,
        sqlite: |conn| {
            let row = direct::query_optional(conn, &sql, &[&id.0, &from, &now, &actor, &to], Row::from_direct)?;
            let Some(row) = row else {
                return Err(StoreError::Stale);
            };
            direct::execute(conn, INSERT_HISTORY, &[&id.0, &action, &actor, &now, &notes])?;
            let names = names_direct(conn, row.subject_id, row.rule_id)?;
            let alert = Alert::try_from(row)?;
            let data = event_data(&alert, &names, notes.as_deref())?;
            direct::execute(conn, INSERT_EVENT, &[&alert.id.0, &action, &actor, &now, &data])?;
            Ok(alert)
        },
        postgres: |tx| {
            let row: Option<Row> = sqlx::query_as(composed(&sql))
                .bind(id.0)
                .bind(from)
                .bind(now)
                .bind(&actor)
                .bind(to)
                .fetch_optional(&mut *tx)
                .await?;
            let Some(row) = row else {
                return Err(StoreError::Stale);
            };
            sqlx::query(INSERT_HISTORY)
                .bind(id.0)
                .bind(action)
                .bind(&actor)
                .bind(now)
                .bind(&notes)
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
                .bind(&actor)
                .bind(now)
                .bind(event_data(&alert, &names, notes.as_deref())?)
                .execute(&mut *tx)
                .await?;
            Ok(alert)
        },
    )
}
