//! Alert rules (admin CRUD; deleted rules are kept for their alerts) and silences.

use serde::Serialize;
use sqlx::FromRow;
use vigia_domain::Timestamp;
use vigia_domain::audit::AuditEntity;
use vigia_domain::detections::{Confidence, Label, RuleSpec, Silence, SilenceTarget};
use vigia_domain::ids::{AlertRuleId, CategoryId, DepartmentId, DeviceId, SilenceId, SubjectId};

use crate::audit::{AuditDraft, insert_audit};
use crate::{ChangeAuthor, Db, StoreError, StoreResult, composed, on_reader, on_writer};

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

#[derive(FromRow)]
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
    for (i, department) in fields.notify_departments.iter().enumerate() {
        if !crate::catalog::department_exists(db, *department).await? {
            return Err(StoreError::UnknownReference {
                field: format!("notify_departments[{i}]"),
                entity: "department",
            });
        }
    }
    if let Some(category) = fields.incident_category_id {
        let n: i64 = on_reader!(db, |pool| sqlx::query_scalar(
            "SELECT COUNT(*) FROM categories WHERE id = $1"
        )
        .bind(category.0)
        .fetch_one(pool)
        .await?);
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

/// Creates (`id: None`) or replaces a rule (audited).
pub async fn save(
    db: &Db,
    id: Option<AlertRuleId>,
    fields: &RuleFields,
    actor: &ChangeAuthor,
) -> StoreResult<AlertRule> {
    check_references(db, fields).await?;
    let before = match id {
        Some(id) => Some(find(db, id).await?),
        None => None,
    };
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
    on_writer!(db, |pool| {
        let mut tx = pool.begin().await?;
        let row: Option<Row> = sqlx::query_as(composed(&sql))
            .bind(&fields.name)
            .bind(labels_text(&fields.spec))
            .bind(i64::from(fields.spec.min_count))
            .bind(fields.spec.window_ms / 1000)
            .bind(i64::from(fields.spec.confidence_floor.micros()))
            .bind(fields.spec.cooldown_ms / 1000)
            .bind(departments_text(&fields.notify_departments))
            .bind(fields.open_incident)
            .bind(fields.incident_category_id.map(|c| c.0))
            .bind(fields.active)
            .bind(now)
            .bind(id.map_or(0, |i| i.0))
            .fetch_optional(&mut *tx)
            .await?;
        let rule = AlertRule::from(row.ok_or(StoreError::NotFound)?);
        let mut draft =
            AuditDraft::new(actor, action, AuditEntity::AlertRule, Some(rule.id.0)).after(&rule);
        if let Some(before) = &before {
            draft = draft.before(before);
        }
        insert_audit!(&mut *tx, draft);
        tx.commit().await?;
        Ok(rule)
    })
}

pub async fn find(db: &Db, id: AlertRuleId) -> StoreResult<AlertRule> {
    let sql = format!("SELECT {COLUMNS} FROM alert_rules WHERE id = $1 AND deleted_at IS NULL");
    let row: Option<Row> = on_reader!(db, |pool| sqlx::query_as(composed(&sql))
        .bind(id.0)
        .fetch_optional(pool)
        .await?);
    row.map(AlertRule::from).ok_or(StoreError::NotFound)
}

/// Every rule not deleted, by id.
pub async fn list(db: &Db) -> StoreResult<Vec<AlertRule>> {
    let sql = format!("SELECT {COLUMNS} FROM alert_rules WHERE deleted_at IS NULL ORDER BY id");
    let rows: Vec<Row> = on_reader!(db, |pool| sqlx::query_as(composed(&sql))
        .fetch_all(pool)
        .await?);
    Ok(rows.into_iter().map(AlertRule::from).collect())
}

/// Deletes a rule (kept, hidden, for the alerts it raised; audited).
pub async fn delete(db: &Db, id: AlertRuleId, actor: &ChangeAuthor) -> StoreResult<()> {
    let before = find(db, id).await?;
    on_writer!(db, |pool| {
        let mut tx = pool.begin().await?;
        sqlx::query("UPDATE alert_rules SET deleted_at = $2, active = $3 WHERE id = $1")
            .bind(id.0)
            .bind(Timestamp::now().millis())
            .bind(false)
            .execute(&mut *tx)
            .await?;
        insert_audit!(
            &mut *tx,
            AuditDraft::new(
                actor,
                "alert_rule.deleted",
                AuditEntity::AlertRule,
                Some(id.0)
            )
            .before(&before)
        );
        tx.commit().await?;
        Ok(())
    })
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

#[derive(FromRow)]
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
    on_writer!(db, |pool| {
        let mut tx = pool.begin().await?;
        let row: SilenceRow = sqlx::query_as(composed(&sql))
            .bind(rule)
            .bind(subject)
            .bind(device)
            .bind(starts_at.millis())
            .bind(ends_at.millis())
            .bind(reason)
            .bind(&actor.label)
            .bind(Timestamp::now().millis())
            .fetch_one(&mut *tx)
            .await?;
        let silence = SilenceRecord::from(row);
        insert_audit!(
            &mut *tx,
            AuditDraft::new(
                actor,
                "silence.created",
                AuditEntity::Silence,
                Some(silence.id.0)
            )
            .after(&silence)
        );
        tx.commit().await?;
        Ok(silence)
    })
}

/// Silences that end after `after` ms (`i64::MIN`: all), newest first.
pub async fn list_silences(db: &Db, ending_after: i64) -> StoreResult<Vec<SilenceRecord>> {
    let sql = format!(
        "SELECT {SILENCE_COLUMNS} FROM silences WHERE ends_at > $1 ORDER BY id DESC LIMIT 1000"
    );
    let rows: Vec<SilenceRow> = on_reader!(db, |pool| sqlx::query_as(composed(&sql))
        .bind(ending_after)
        .fetch_all(pool)
        .await?);
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
    on_writer!(db, |pool| {
        let mut tx = pool.begin().await?;
        let row: Option<SilenceRow> = sqlx::query_as(composed(&sql))
            .bind(id.0)
            .bind(now)
            .fetch_optional(&mut *tx)
            .await?;
        let silence = SilenceRecord::from(row.ok_or(StoreError::NotFound)?);
        insert_audit!(
            &mut *tx,
            AuditDraft::new(actor, "silence.expired", AuditEntity::Silence, Some(id.0))
                .after(&silence)
        );
        tx.commit().await?;
        Ok(silence)
    })
}

/// Counts one alert a silence kept from being raised.
pub async fn count_suppressed(db: &Db, id: SilenceId) -> StoreResult<()> {
    on_writer!(db, |pool| sqlx::query(
        "UPDATE silences SET suppressed = suppressed + 1 WHERE id = $1"
    )
    .bind(id.0)
    .execute(pool)
    .await
    .map(|_| ())?);
    Ok(())
}
