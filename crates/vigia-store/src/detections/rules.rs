//! Alert rules (admin CRUD; deleted rules are kept for their alerts) and silences.

use serde::Serialize;
use vigia_domain::Timestamp;
use vigia_domain::audit::AuditEntity;
use vigia_domain::detections::{Confidence, Label, RuleSpec, Silence, SilenceTarget};
use vigia_domain::ids::{AlertRuleId, CategoryId, DepartmentId, DeviceId, SilenceId, SubjectId};

use super::audited;
use crate::audit::{AuditDraft, insert_audit, insert_audit_direct};
use crate::direct::direct_row;
use crate::{
    ChangeAuthor, Db, StoreError, StoreResult, composed, direct, direct_read, grouped_write,
};

#[derive(Debug, Clone, Serialize)]
pub struct AlertRule {
    pub id: AlertRuleId,
    pub name: String,
    pub labels: Vec<String>,
    pub min_count: i64,
    pub window_secs: i64,
    /// Millionths.
    pub confidence_floor: i64,
    pub cooldown_secs: i64,
    /// Departments told of its alerts besides the subject's own.
    pub notify_departments: Vec<DepartmentId>,
    /// A `high` alert opens an incident (source `rule`) in the subject's department.
    pub open_incident: bool,
    pub incident_category_id: Option<CategoryId>,
    pub active: bool,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl AlertRule {
    pub fn spec(&self) -> RuleSpec {
        RuleSpec {
            labels: self.labels.iter().map(Label::stored).collect(),
            min_count: self.min_count.clamp(1, u32::MAX as i64) as u32,
            window_ms: self.window_secs * 1000,
            confidence_floor: Confidence::from_micros(self.confidence_floor),
            cooldown_ms: self.cooldown_secs * 1000,
        }
    }
}

direct_row! {
    struct Row {
        id: i64,
        name: String,
        labels: String,
        min_count: i64,
        window_secs: i64,
        confidence_floor: i64,
        cooldown_secs: i64,
        notify_departments: String,
        open_incident: bool,
        incident_category_id: Option<i64>,
        active: bool,
        created_at: i64,
        updated_at: i64,
    }
}

impl From<Row> for AlertRule {
    fn from(r: Row) -> Self {
        Self {
            id: AlertRuleId(r.id),
            name: r.name,
            labels: r.labels.split_whitespace().map(str::to_owned).collect(),
            min_count: r.min_count,
            window_secs: r.window_secs,
            confidence_floor: r.confidence_floor,
            cooldown_secs: r.cooldown_secs,
            notify_departments: r
                .notify_departments
                .split_whitespace()
                .filter_map(|d| d.parse().ok().map(DepartmentId))
                .collect(),
            open_incident: r.open_incident,
            incident_category_id: r.incident_category_id.map(CategoryId),
            active: r.active,
            created_at: Timestamp::from_millis(r.created_at),
            updated_at: Timestamp::from_millis(r.updated_at),
        }
    }
}

const COLUMNS: &str = "id, name, labels, min_count, window_secs, confidence_floor, cooldown_secs, \
     notify_departments, open_incident, incident_category_id, active, created_at, updated_at";

/// A rule's fields as an admin sets them (the spec already checked by the domain).
#[derive(Debug, Clone)]
pub struct RuleFields {
    pub name: String,
    pub spec: RuleSpec,
    pub notify_departments: Vec<DepartmentId>,
    pub open_incident: bool,
    pub incident_category_id: Option<CategoryId>,
    pub active: bool,
}

async fn check_references(db: &Db, fields: &RuleFields) -> StoreResult<()> {
    const CATEGORY: &str = "SELECT COUNT(*) AS n FROM categories WHERE id = $1";
    for (i, department) in fields.notify_departments.iter().enumerate() {
        if !crate::catalog::department_exists(db, *department).await? {
            return Err(StoreError::UnknownReference {
                field: format!("notify_departments[{i}]"),
                entity: "department",
            });
        }
    }
    if let Some(category) = fields.incident_category_id {
        let n: i64 = direct_read!(db,
            sqlite: |conn| Ok(direct::query_optional(conn, CATEGORY, &[&category.0], |r| r.get("n"))?.unwrap_or(0)),
            postgres: |pool| Ok(sqlx::query_scalar(CATEGORY).bind(category.0).fetch_one(pool).await?),
        )?;
        if n == 0 {
            return Err(StoreError::UnknownReference {
                field: "incident_category_id".into(),
                entity: "category",
            });
        }
    }
    Ok(())
}

fn labels_text(spec: &RuleSpec) -> String {
    spec.labels
        .iter()
        .map(Label::as_str)
        .collect::<Vec<_>>()
        .join(" ")
}

fn departments_text(ids: &[DepartmentId]) -> String {
    ids.iter()
        .map(|d| d.0.to_string())
        .collect::<Vec<_>>()
        .join(" ")
}

fn find_sql() -> String {
    format!("SELECT {COLUMNS} FROM alert_rules WHERE id = $1 AND deleted_at IS NULL")
}

/// Creates (`id: None`) or replaces a rule (audited).
pub async fn save(
    db: &Db,
    id: Option<AlertRuleId>,
    fields: &RuleFields,
    actor: &ChangeAuthor,
) -> StoreResult<AlertRule> {
    check_references(db, fields).await?;
    let find = find_sql();
    let now = Timestamp::now().millis();
    let sql = match id {
        None => format!(
            "INSERT INTO alert_rules (name, labels, min_count, window_secs, confidence_floor, cooldown_secs, \
             notify_departments, open_incident, incident_category_id, active, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11) RETURNING {COLUMNS}"
        ),
        Some(_) => format!(
            "UPDATE alert_rules SET name = $1, labels = $2, min_count = $3, window_secs = $4, \
             confidence_floor = $5, cooldown_secs = $6, notify_departments = $7, open_incident = $8, \
             incident_category_id = $9, active = $10, updated_at = $11 \
             WHERE id = $12 AND deleted_at IS NULL RETURNING {COLUMNS}"
        ),
    };
    let action = if id.is_some() {
        "alert_rule.updated"
    } else {
        "alert_rule.created"
    };
    let actor = actor.clone();
    let name = fields.name.clone();
    let labels = labels_text(&fields.spec);
    let min_count = i64::from(fields.spec.min_count);
    let window_secs = fields.spec.window_ms / 1000;
    let floor = i64::from(fields.spec.confidence_floor.micros());
    let cooldown_secs = fields.spec.cooldown_ms / 1000;
    let departments = departments_text(&fields.notify_departments);
    let open_incident = fields.open_incident;
    let category = fields.incident_category_id.map(|c| c.0);
    let active = fields.active;
    let target = id.map_or(0, |i| i.0);
    let audit = move |before: Option<AlertRule>, rule: &AlertRule| {
        let mut draft =
            AuditDraft::new(&actor, action, AuditEntity::AlertRule, Some(rule.id.0)).after(rule);
        if let Some(before) = &before {
            draft = draft.before(before);
        }
        draft
    };
    grouped_write!(db,
        sqlite: |conn| {
            let before: Option<AlertRule> = match id {
                Some(id) => Some(audited::before_direct(conn, &find, id.0, Row::from_direct)?),
                None => None,
            };
            audited::returning_direct(
                conn,
                &sql,
                &[
                    &name,
                    &labels,
                    &min_count,
                    &window_secs,
                    &floor,
                    &cooldown_secs,
                    &departments,
                    &open_incident,
                    &category,
                    &active,
                    &now,
                    &target,
                ],
                Row::from_direct,
                None,
                |rule| audit(before, rule),
            )
        },
        postgres: |tx| {
            let before = match id {
                Some(id) => {
                    Some(audited::before_postgres::<Row, AlertRule>(&mut *tx, &find, id.0).await?)
                }
                None => None,
            };
            let query = sqlx::query_as::<_, Row>(composed(&sql))
                .bind(&name)
                .bind(&labels)
                .bind(min_count)
                .bind(window_secs)
                .bind(floor)
                .bind(cooldown_secs)
                .bind(&departments)
                .bind(open_incident)
                .bind(category)
                .bind(active)
                .bind(now)
                .bind(target);
            audited::returning_postgres(&mut *tx, query, None, |rule| audit(before, rule)).await
        },
    )
}

pub async fn find(db: &Db, id: AlertRuleId) -> StoreResult<AlertRule> {
    let sql = find_sql();
    let row: Option<Row> = direct_read!(db,
        sqlite: |conn| direct::query_optional(conn, &sql, &[&id.0], Row::from_direct),
        postgres: |pool| Ok(sqlx::query_as(composed(&sql)).bind(id.0).fetch_optional(pool).await?),
    )?;
    row.map(AlertRule::from).ok_or(StoreError::NotFound)
}

/// Every rule not deleted, by id.
pub async fn list(db: &Db) -> StoreResult<Vec<AlertRule>> {
    let sql = format!("SELECT {COLUMNS} FROM alert_rules WHERE deleted_at IS NULL ORDER BY id");
    let rows: Vec<Row> = direct_read!(db,
        sqlite: |conn| direct::query(conn, &sql, &[], Row::from_direct),
        postgres: |pool| Ok(sqlx::query_as(composed(&sql)).fetch_all(pool).await?),
    )?;
    Ok(rows.into_iter().map(AlertRule::from).collect())
}

/// Deletes a rule (kept, hidden, for the alerts it raised; audited).
pub async fn delete(db: &Db, id: AlertRuleId, actor: &ChangeAuthor) -> StoreResult<()> {
    const DELETE: &str = "UPDATE alert_rules SET deleted_at = $2, active = $3 WHERE id = $1";
    let find = find_sql();
    let now = Timestamp::now().millis();
    let actor = actor.clone();
    let audit = move |before: &AlertRule| {
        AuditDraft::new(
            &actor,
            "alert_rule.deleted",
            AuditEntity::AlertRule,
            Some(id.0),
        )
        .before(before)
    };
    grouped_write!(db,
        sqlite: |conn| {
            let before: AlertRule = audited::before_direct(conn, &find, id.0, Row::from_direct)?;
            direct::execute(conn, DELETE, &[&id.0, &now, &false])?;
            insert_audit_direct(conn, audit(&before))
        },
        postgres: |tx| {
            let before = audited::before_postgres::<Row, AlertRule>(&mut *tx, &find, id.0).await?;
            sqlx::query(DELETE)
                .bind(id.0)
                .bind(now)
                .bind(false)
                .execute(&mut *tx)
                .await?;
            insert_audit!(&mut *tx, audit(&before));
            Ok(())
        },
    )
}

// --- silences ----------------------------------------------------------------------------------

#[derive(Debug, Clone, Serialize)]
pub struct SilenceRecord {
    pub id: SilenceId,
    pub target: SilenceTarget,
    pub starts_at: Timestamp,
    pub ends_at: Timestamp,
    pub reason: String,
    pub created_by: String,
    pub created_at: Timestamp,
    /// Alerts this silence kept from being raised.
    pub suppressed: i64,
}

impl SilenceRecord {
    pub fn silence(&self) -> Silence {
        Silence {
            id: self.id,
            target: self.target,
            starts_at: self.starts_at,
            ends_at: self.ends_at,
        }
    }
}

direct_row! {
    struct SilenceRow {
        id: i64,
        rule_id: Option<i64>,
        subject_id: Option<i64>,
        device_id: Option<i64>,
        starts_at: i64,
        ends_at: i64,
        reason: String,
        created_by: String,
        created_at: i64,
        suppressed: i64,
    }
}

impl From<SilenceRow> for SilenceRecord {
    fn from(r: SilenceRow) -> Self {
        let target = match (r.rule_id, r.subject_id, r.device_id) {
            (Some(id), _, _) => SilenceTarget::Rule(AlertRuleId(id)),
            (_, Some(id), _) => SilenceTarget::Subject(SubjectId(id)),
            (_, _, id) => SilenceTarget::Device(DeviceId(id.unwrap_or_default())),
        };
        Self {
            id: SilenceId(r.id),
            target,
            starts_at: Timestamp::from_millis(r.starts_at),
            ends_at: Timestamp::from_millis(r.ends_at),
            reason: r.reason,
            created_by: r.created_by,
            created_at: Timestamp::from_millis(r.created_at),
            suppressed: r.suppressed,
        }
    }
}

const SILENCE_COLUMNS: &str = "id, rule_id, subject_id, device_id, starts_at, ends_at, reason, \
     created_by, created_at, suppressed";

/// Creates a silence (audited); its target must exist.
pub async fn create_silence(
    db: &Db,
    target: SilenceTarget,
    starts_at: Timestamp,
    ends_at: Timestamp,
    reason: &str,
    actor: &ChangeAuthor,
) -> StoreResult<SilenceRecord> {
    let (rule, subject, device) = match target {
        SilenceTarget::Rule(id) => {
            find(db, id)
                .await
                .map_err(StoreError::missing_reference("rule_id", "alert rule"))?;
            (Some(id.0), None, None)
        }
        SilenceTarget::Subject(id) => {
            super::subjects::find(db, id)
                .await
                .map_err(StoreError::missing_reference("subject_id", "subject"))?;
            (None, Some(id.0), None)
        }
        SilenceTarget::Device(id) => {
            super::devices::find(db, id)
                .await
                .map_err(StoreError::missing_reference("device_id", "device"))?;
            (None, None, Some(id.0))
        }
    };
    let sql = format!(
        "INSERT INTO silences (rule_id, subject_id, device_id, starts_at, ends_at, reason, created_by, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING {SILENCE_COLUMNS}"
    );
    let (starts, ends, now) = (
        starts_at.millis(),
        ends_at.millis(),
        Timestamp::now().millis(),
    );
    let (reason, actor) = (reason.to_owned(), actor.clone());
    let label = actor.label.clone();
    let audit = move |silence: &SilenceRecord| {
        AuditDraft::new(
            &actor,
            "silence.created",
            AuditEntity::Silence,
            Some(silence.id.0),
        )
        .after(silence)
    };
    grouped_write!(db,
        sqlite: |conn| audited::returning_direct(
            conn,
            &sql,
            &[&rule, &subject, &device, &starts, &ends, &reason, &label, &now],
            SilenceRow::from_direct,
            None,
            audit,
        ),
        postgres: |tx| {
            let query = sqlx::query_as::<_, SilenceRow>(composed(&sql))
                .bind(rule)
                .bind(subject)
                .bind(device)
                .bind(starts)
                .bind(ends)
                .bind(&reason)
                .bind(&label)
                .bind(now);
            audited::returning_postgres(&mut *tx, query, None, audit).await
        },
    )
}

/// Silences that end after `after` ms (`i64::MIN`: all), newest first.
pub async fn list_silences(db: &Db, ending_after: i64) -> StoreResult<Vec<SilenceRecord>> {
    let sql = format!(
        "SELECT {SILENCE_COLUMNS} FROM silences WHERE ends_at > $1 ORDER BY id DESC LIMIT 1000"
    );
    let rows: Vec<SilenceRow> = direct_read!(db,
        sqlite: |conn| direct::query(conn, &sql, &[&ending_after], SilenceRow::from_direct),
        postgres: |pool| Ok(sqlx::query_as(composed(&sql))
            .bind(ending_after)
            .fetch_all(pool)
            .await?),
    )?;
    Ok(rows.into_iter().map(SilenceRecord::from).collect())
}

/// Ends a silence now (audited); one already over is left as it is.
pub async fn expire_silence(
    db: &Db,
    id: SilenceId,
    actor: &ChangeAuthor,
) -> StoreResult<SilenceRecord> {
    let now = Timestamp::now().millis();
    let sql = format!(
        "UPDATE silences SET ends_at = CASE WHEN ends_at > $2 THEN (CASE WHEN starts_at < $2 THEN $2 ELSE starts_at + 1 END) ELSE ends_at END \
         WHERE id = $1 RETURNING {SILENCE_COLUMNS}"
    );
    let actor = actor.clone();
    let audit = move |silence: &SilenceRecord| {
        AuditDraft::new(&actor, "silence.expired", AuditEntity::Silence, Some(id.0)).after(silence)
    };
    grouped_write!(db,
        sqlite: |conn| audited::returning_direct(
            conn,
            &sql,
            &[&id.0, &now],
            SilenceRow::from_direct,
            None,
            audit,
        ),
        postgres: |tx| {
            let query = sqlx::query_as::<_, SilenceRow>(composed(&sql))
                .bind(id.0)
                .bind(now);
            audited::returning_postgres(&mut *tx, query, None, audit).await
        },
    )
}

/// Counts one alert a silence kept from being raised.
pub async fn count_suppressed(db: &Db, id: SilenceId) -> StoreResult<()> {
    const COUNT: &str = "UPDATE silences SET suppressed = suppressed + 1 WHERE id = $1";
    grouped_write!(db,
        sqlite: |conn| direct::execute(conn, COUNT, &[&id.0]).map(|_| ()),
        postgres: |tx| {
            sqlx::query(COUNT).bind(id.0).execute(&mut *tx).await?;
            Ok(())
        },
    )
}
