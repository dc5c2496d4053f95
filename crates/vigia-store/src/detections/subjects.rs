//! Monitored subjects (people or assets) and their consent.

use serde::Serialize;
use sqlx::FromRow;
use vigia_domain::Timestamp;
use vigia_domain::audit::AuditEntity;
use vigia_domain::ids::{DepartmentId, SubjectId, ZoneId};

use super::DepartmentScope;
use crate::audit::{AuditDraft, insert_audit};
use crate::page::{Cursor, Page};
use crate::{ChangeAuthor, Db, StoreError, StoreResult, composed, on_reader, on_writer};

#[derive(Debug, Clone, Serialize)]
pub struct Subject {
    pub id: SubjectId,
    pub code: String,
    pub name: String,
    pub department_id: DepartmentId,
    pub zone_id: Option<ZoneId>,
    /// When consent was recorded; `None`: no consent (detections are refused).
    pub consent_at: Option<Timestamp>,
    pub consent_by: Option<String>,
    /// Detections refused because the subject had not consented.
    pub refused: i64,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

#[derive(FromRow)]
struct Row {
    id: i64,
    code: String,
    name: String,
    department_id: i64,
    zone_id: Option<i64>,
    consent_at: Option<i64>,
    consent_by: Option<String>,
    refused: i64,
    created_at: i64,
    updated_at: i64,
}

impl From<Row> for Subject {
    fn from(r: Row) -> Self {
        Self {
            id: SubjectId(r.id),
            code: r.code,
            name: r.name,
            department_id: DepartmentId(r.department_id),
            zone_id: r.zone_id.map(ZoneId),
            consent_at: r.consent_at.map(Timestamp::from_millis),
            consent_by: r.consent_by,
            refused: r.refused,
            created_at: Timestamp::from_millis(r.created_at),
            updated_at: Timestamp::from_millis(r.updated_at),
        }
    }
}

const COLUMNS: &str = "id, code, name, department_id, zone_id, consent_at, consent_by, refused, created_at, updated_at";

/// A subject's editable fields.
#[derive(Debug, Clone)]
pub struct SubjectFields {
    pub code: String,
    pub name: String,
    pub department_id: DepartmentId,
    pub zone_id: Option<ZoneId>,
}

async fn check_references(db: &Db, fields: &SubjectFields) -> StoreResult<()> {
    if !crate::catalog::department_exists(db, fields.department_id).await? {
        return Err(StoreError::UnknownReference {
            field: "department_id".into(),
            entity: "department",
        });
    }
    if let Some(zone) = fields.zone_id {
        let n: i64 = on_reader!(db, |pool| sqlx::query_scalar(
            "SELECT COUNT(*) FROM zones WHERE id = $1"
        )
        .bind(zone.0)
        .fetch_one(pool)
        .await?);
        if n == 0 {
            return Err(StoreError::UnknownReference {
                field: "zone_id".into(),
                entity: "zone",
            });
        }
    }
    Ok(())
}

/// Registers a subject (audited). `consent`: consent recorded now by the actor.
pub async fn create(
    db: &Db,
    fields: &SubjectFields,
    consent: bool,
    actor: &ChangeAuthor,
) -> StoreResult<Subject> {
    check_references(db, fields).await?;
    let now = Timestamp::now().millis();
    let sql = format!(
        "INSERT INTO subjects (code, name, department_id, zone_id, consent_at, consent_by, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $7) RETURNING {COLUMNS}"
    );
    on_writer!(db, |pool| {
        let mut tx = pool.begin().await?;
        let row: Row = sqlx::query_as(composed(&sql))
            .bind(&fields.code)
            .bind(&fields.name)
            .bind(fields.department_id.0)
            .bind(fields.zone_id.map(|z| z.0))
            .bind(consent.then_some(now))
            .bind(consent.then(|| actor.label.clone()))
            .bind(now)
            .fetch_one(&mut *tx)
            .await
            .map_err(|e| StoreError::unique(e, "subjects_code_key", "code"))?;
        let subject = Subject::from(row);
        insert_audit!(
            &mut *tx,
            AuditDraft::new(
                actor,
                "subject.created",
                AuditEntity::Subject,
                Some(subject.id.0)
            )
            .after(&subject)
        );
        tx.commit().await?;
        Ok(subject)
    })
}

pub async fn find(db: &Db, id: SubjectId) -> StoreResult<Subject> {
    let sql = format!("SELECT {COLUMNS} FROM subjects WHERE id = $1");
    let row: Option<Row> = on_reader!(db, |pool| sqlx::query_as(composed(&sql))
        .bind(id.0)
        .fetch_optional(pool)
        .await?);
    row.map(Subject::from).ok_or(StoreError::NotFound)
}

/// Subjects in `scope`, newest first.
pub async fn list(
    db: &Db,
    scope: &DepartmentScope,
    department: Option<DepartmentId>,
    after: Option<Cursor>,
    limit: usize,
) -> StoreResult<Page<Subject>> {
    let (scoped, ids) = scope.condition("department_id", 3);
    let sql = format!(
        "SELECT {COLUMNS} FROM subjects WHERE id < $1 AND ($2 = 0 OR department_id = $2){scoped} \
         ORDER BY id DESC LIMIT {}",
        limit + 1
    );
    let rows: Vec<Row> = on_reader!(db, |pool| {
        let mut q = sqlx::query_as(composed(&sql))
            .bind(after.map_or(i64::MAX, |c| c.0))
            .bind(department.map_or(0, |d| d.0));
        for id in &ids {
            q = q.bind(*id);
        }
        q.fetch_all(pool).await?
    });
    Ok(Page::from_rows(rows, limit, |r| r.id).map(Subject::from))
}

/// Changes a subject's fields (audited with before and after).
pub async fn update(
    db: &Db,
    id: SubjectId,
    fields: &SubjectFields,
    actor: &ChangeAuthor,
) -> StoreResult<Subject> {
    check_references(db, fields).await?;
    let before = find(db, id).await?;
    let sql = format!(
        "UPDATE subjects SET code = $2, name = $3, department_id = $4, zone_id = $5, updated_at = $6 \
         WHERE id = $1 RETURNING {COLUMNS}"
    );
    on_writer!(db, |pool| {
        let mut tx = pool.begin().await?;
        let row: Option<Row> = sqlx::query_as(composed(&sql))
            .bind(id.0)
            .bind(&fields.code)
            .bind(&fields.name)
            .bind(fields.department_id.0)
            .bind(fields.zone_id.map(|z| z.0))
            .bind(Timestamp::now().millis())
            .fetch_optional(&mut *tx)
            .await
            .map_err(|e| StoreError::unique(e, "subjects_code_key", "code"))?;
        let subject = Subject::from(row.ok_or(StoreError::NotFound)?);
        insert_audit!(
            &mut *tx,
            AuditDraft::new(actor, "subject.updated", AuditEntity::Subject, Some(id.0))
                .before(&before)
                .after(&subject)
        );
        tx.commit().await?;
        Ok(subject)
    })
}

/// Records (`true`) or withdraws (`false`) a subject's consent (audited). Withdrawal takes
/// effect for every detection written after this commit: ingestion reads consent in the
/// writer's own transaction.
pub async fn set_consent(
    db: &Db,
    id: SubjectId,
    consent: bool,
    actor: &ChangeAuthor,
) -> StoreResult<Subject> {
    let before = find(db, id).await?;
    let now = Timestamp::now().millis();
    let sql = format!(
        "UPDATE subjects SET consent_at = $2, consent_by = $3, updated_at = $4 WHERE id = $1 RETURNING {COLUMNS}"
    );
    let action = if consent {
        "subject.consent_recorded"
    } else {
        "subject.consent_withdrawn"
    };
    on_writer!(db, |pool| {
        let mut tx = pool.begin().await?;
        let row: Option<Row> = sqlx::query_as(composed(&sql))
            .bind(id.0)
            .bind(consent.then_some(now))
            .bind(consent.then(|| actor.label.clone()))
            .bind(now)
            .fetch_optional(&mut *tx)
            .await?;
        let subject = Subject::from(row.ok_or(StoreError::NotFound)?);
        insert_audit!(
            &mut *tx,
            AuditDraft::new(actor, action, AuditEntity::Subject, Some(id.0))
                .before(&before)
                .after(&subject)
        );
        tx.commit().await?;
        Ok(subject)
    })
}
